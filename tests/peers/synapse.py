"""A real Synapse homeserver on 127.0.0.1 as a test peer, plus helpers for fake humans.

One `SynapseServer` is started per test session (~3 s); every test registers its own users
(shared-secret admin API) and creates its own rooms, so tests never share state.

Traps hit for real with Synapse + matrix-nio, and how this module avoids them:

1. Synapse caches identical ``/sync`` answers for 2 minutes, so a client restarted within that
   window replays old messages: ``testing.yaml`` sets ``caches.sync_response_cache_duration: 0``.
2. All ``/login`` calls from 127.0.0.1 share one bucket of 5, then a 5-minute lockout: accounts
   come from shared-secret registration (which returns a token and a device) and clients use
   ``restore_login``; nothing here ever calls ``/login``. Rate limits are lifted in the overlay.
3. nio retries 429s and timeouts forever by default, so a broken test hangs: every client gets
   ``max_limit_exceeded=3`` and ``max_timeouts=5``.
4. nio persists the sync token itself only with encryption enabled: the helpers keep each
   client's position in memory (``client.next_batch``); a bot must persist ``next_batch``.
5. nio does not create ``store_path`` (E2EE then fails with peewee's "unable to open database
   file"): `new_client` creates the directory first.
6. Event callbacks registered before the first sync fire for the whole backlog: the helpers'
   per-client inbox relies on exactly that (a message that arrived before the client first
   synced is still found), and `wait_for_message` consumes each event at most once.

Synapse makes no outbound connection with this config: no federation listener, no trusted key
servers, no stats reporting, no URL previews, presence off.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import io
import socket
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import nio
import yaml
from nio.crypto.attachments import decrypt_attachment

SERVER_NAME = "localhost"
SHARED_SECRET = "sicherheitsbot-test-registration-secret"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SYNC_POLL_SECONDS = 1.0
REGISTER_PATH = "/_synapse/admin/v1/register"
MEGOLM = "m.megolm.v1.aes-sha2"
_LIFTED: dict[str, int] = {"per_second": 10000, "burst_count": 100000}

MessagePredicate = Callable[[nio.RoomMessage], bool]


class SynapseError(RuntimeError):
    """Synapse (or nio talking to it) answered with an error."""


@dataclass(frozen=True)
class MatrixAccount:
    user_id: str
    access_token: str
    device_id: str
    password: str


@dataclass
class _Inbox:
    """Room messages one client has seen in its syncs (fed by an nio event callback)."""

    messages: list[tuple[str, nio.RoomMessage]] = field(default_factory=list)
    undecrypted: list[nio.MegolmEvent] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    async def on_event(self, room: nio.MatrixRoom, event: nio.Event) -> None:
        if event.event_id in self.seen:
            return
        if isinstance(event, nio.MegolmEvent):
            event.room_id = room.room_id
            if all(e.event_id != event.event_id for e in self.undecrypted):
                self.undecrypted.append(event)
        elif isinstance(event, nio.RoomMessage):
            self.seen.add(event.event_id)
            self.messages.append((room.room_id, event))

    def retry_decryption(self, client: nio.AsyncClient) -> None:
        """Room keys may arrive in a later sync than the message they unlock."""
        still_locked: list[nio.MegolmEvent] = []
        for event in self.undecrypted:
            try:
                decrypted = client.decrypt_event(event)
            except nio.EncryptionError:
                still_locked.append(event)
                continue
            if isinstance(decrypted, nio.RoomMessage) and decrypted.event_id not in self.seen:
                self.seen.add(decrypted.event_id)
                self.messages.append((event.room_id, decrypted))
        self.undecrypted = still_locked

    def take(
        self, room_id: str, own_id: str, predicate: MessagePredicate
    ) -> nio.RoomMessage | None:
        for index, (event_room, event) in enumerate(self.messages):
            if event_room == room_id and event.sender != own_id and predicate(event):
                del self.messages[index]
                return event
        return None

    def describe(self, room_id: str) -> str:
        bodies = [repr(getattr(e, "body", e)) for r, e in self.messages if r == room_id]
        return f"unconsumed={bodies}, undecryptable={len(self.undecrypted)}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _registration_mac(nonce: str, username: str, password: str, admin: bool) -> str:
    message = "\0".join([nonce, username, password, "admin" if admin else "notadmin"])
    return hmac.new(SHARED_SECRET.encode(), message.encode(), hashlib.sha1).hexdigest()


def _homeserver_config(workdir: Path, port: int) -> dict[str, Any]:
    data = workdir / "data"
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(workdir / "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}},
        "media_store_path": str(data / "media_store"),
        "signing_key_path": str(data / f"{SERVER_NAME}.signing.key"),
        "registration_shared_secret": SHARED_SECRET,
        "macaroon_secret_key": "sicherheitsbot-test-macaroon-secret",
        "form_secret": "sicherheitsbot-test-form-secret",
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "url_preview_enabled": False,
        "enable_metrics": False,
        "presence": {"enabled": False},
    }


def _testing_config() -> dict[str, Any]:
    flat = [
        "rc_message",
        "rc_registration",
        "rc_joins_per_room",
        "rc_room_creation",
        "rc_media_create",
        "rc_key_requests",
        "rc_3pid_validation",
        "rc_admin_redaction",
        "rc_third_party_invite",
        "rc_profile",
        "rc_user_directory",
    ]
    nested = {
        "rc_login": ["address", "account", "failed_attempts"],
        "rc_joins": ["local", "remote"],
        "rc_invites": ["per_room", "per_user", "per_issuer"],
        "rc_presence": ["per_user"],
    }
    config: dict[str, Any] = {key: dict(_LIFTED) for key in flat}
    config |= {key: {sub: dict(_LIFTED) for sub in subs} for key, subs in nested.items()}
    config["bcrypt_rounds"] = 4
    config["caches"] = {"sync_response_cache_duration": 0}
    return config


def _write_configs(workdir: Path, port: int) -> list[Path]:
    (workdir / "data" / "media_store").mkdir(parents=True, exist_ok=True)
    files = {
        workdir / "homeserver.yaml": _homeserver_config(workdir, port),
        workdir / "testing.yaml": _testing_config(),
    }
    for path, config in files.items():
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return list(files)


def _log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _is_joined(client: nio.AsyncClient, room_id: str, user_id: str) -> bool:
    room = client.rooms.get(room_id)
    return room is not None and user_id in room.users and user_id not in room.invited_users


def _check(response: Any, expected: type, what: str) -> Any:
    if not isinstance(response, expected):
        raise SynapseError(f"{what} failed: {response!r}")
    return response


class SynapseServer:
    """A Synapse child process on 127.0.0.1 with a throw-away SQLite database in `workdir`."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir.resolve()
        self.port = port if port is not None else _free_port()
        self.log_path = self.workdir / "homeserver.log"
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._clients: weakref.WeakSet[nio.AsyncClient] = weakref.WeakSet()
        self._inboxes: weakref.WeakKeyDictionary[nio.AsyncClient, _Inbox] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_name(self) -> str:
        return SERVER_NAME

    # -- process lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("Synapse is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        configs = _write_configs(self.workdir, self.port)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            self._process = await self._spawn(configs)
            await self._wait_until_ready()
        except BaseException:
            await self.stop()
            raise

    async def _spawn(self, configs: list[Path]) -> asyncio.subprocess.Process:
        args = [sys.executable, "-m", "synapse.app.homeserver"]
        for config in configs:
            args += ["-c", str(config)]
        with self.log_path.open("ab") as log:
            return await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.workdir,
            )

    async def _wait_until_ready(self) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while not await self._answers_versions():
            if self._process.returncode is not None:
                raise RuntimeError(
                    f"Synapse exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            if loop.time() > deadline:
                raise TimeoutError(f"Synapse not ready in {READY_TIMEOUT} s:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def _answers_versions(self) -> bool:
        assert self._http is not None
        url = f"{self.base_url}/_matrix/client/versions"
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def stop(self) -> None:
        for client in list(self._clients):
            await client.close()
        self._clients = weakref.WeakSet()
        if self._process is not None:
            await self._terminate(self._process)
            self._process = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    @staticmethod
    async def _terminate(process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        try:
            process.terminate()
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except ProcessLookupError:
            return
        except TimeoutError:
            process.kill()
            await process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log_path, lines)

    # -- admin API ---------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("Synapse is not running")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.base_url}{path}"
        async with self._http.request(method, url, json=body, headers=headers) as response:
            data: dict[str, Any] = await response.json(content_type=None)
            if response.status >= 400:
                raise SynapseError(f"{method} {path} -> {response.status}: {data}")
            return data

    async def register(
        self, username: str, password: str | None = None, admin: bool = False
    ) -> MatrixAccount:
        """Shared-secret registration (nonce + HMAC-SHA1); never touches /login (trap 2)."""
        password = f"pw-{username}" if password is None else password
        nonce = (await self._request("GET", REGISTER_PATH))["nonce"]
        body = {
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": _registration_mac(nonce, username, password, admin),
        }
        data = await self._request("POST", REGISTER_PATH, body=body)
        return MatrixAccount(data["user_id"], data["access_token"], data["device_id"], password)

    def _ratelimit_path(self, user_id: str) -> str:
        return f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit"

    async def override_ratelimit(self, admin_token: str, user_id: str) -> dict[str, Any]:
        """Lift every per-user rate limit (except login) of `user_id`, e.g. the bot's."""
        body = {"messages_per_second": 0, "burst_count": 0}
        return await self._request("POST", self._ratelimit_path(user_id), admin_token, body)

    async def get_ratelimit_override(self, admin_token: str, user_id: str) -> dict[str, Any]:
        """The user's override ({} if none)."""
        return await self._request("GET", self._ratelimit_path(user_id), admin_token)

    # -- nio clients -------------------------------------------------------------------

    async def new_client(
        self, account: MatrixAccount, store_dir: Path, encryption: bool = False
    ) -> nio.AsyncClient:
        await asyncio.to_thread(store_dir.mkdir, parents=True, exist_ok=True)  # trap 5
        config = nio.AsyncClientConfig(
            encryption_enabled=encryption,
            store_sync_tokens=True,
            max_limit_exceeded=3,  # trap 3
            max_timeouts=5,
        )
        client = nio.AsyncClient(
            self.base_url,
            account.user_id,
            device_id=account.device_id,
            store_path=str(store_dir),
            config=config,
        )
        client.restore_login(account.user_id, account.device_id, account.access_token)
        if encryption:
            client.load_store()  # no-op when restore_login already loaded it
            await self._crypto_upkeep(client)  # publish device keys before anyone shares to us
        self._inbox(client)
        self._clients.add(client)
        return client

    def _inbox(self, client: nio.AsyncClient) -> _Inbox:
        inbox = self._inboxes.get(client)
        if inbox is None:
            inbox = _Inbox()
            client.add_event_callback(inbox.on_event, (nio.RoomMessage, nio.MegolmEvent))
            self._inboxes[client] = inbox
        return inbox

    @staticmethod
    async def _crypto_upkeep(client: nio.AsyncClient) -> None:
        """What `sync_forever` does between syncs: keys up, keys queried, to-device out."""
        if client.olm is None:
            return
        if client.should_upload_keys:
            _check(await client.keys_upload(), nio.KeysUploadResponse, "keys upload")
        if client.should_query_keys:
            _check(await client.keys_query(), nio.KeysQueryResponse, "keys query")
        if client.should_claim_keys:
            users = client.get_users_for_key_claiming()
            _check(await client.keys_claim(users), nio.KeysClaimResponse, "keys claim")
        await client.send_to_device_messages()

    async def _sync(self, client: nio.AsyncClient, timeout_ms: int) -> None:
        self._inbox(client)
        _check(await client.sync(timeout=timeout_ms), nio.SyncResponse, "sync")
        await self._crypto_upkeep(client)

    async def _sync_until(
        self, client: nio.AsyncClient, condition: Callable[[], bool], seconds: float, what: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{client.user_id}: {what} not seen within {seconds} s")
            await self._sync(client, int(min(remaining, SYNC_POLL_SECONDS) * 1000))

    # -- a human's actions -------------------------------------------------------------

    async def create_dm(
        self, client: nio.AsyncClient, other_user_id: str, encrypted: bool = False
    ) -> str:
        """A direct chat as Element creates it; returns once `client` knows the room."""
        encryption = {
            "type": "m.room.encryption",
            "state_key": "",
            "content": {"algorithm": MEGOLM},
        }
        initial_state = [encryption] if encrypted else []
        response = await client.room_create(
            is_direct=True,
            preset=nio.RoomPreset.trusted_private_chat,
            invite=[other_user_id],
            initial_state=initial_state,
        )
        room_id: str = _check(response, nio.RoomCreateResponse, "room create").room_id
        await self._sync_until(client, lambda: room_id in client.rooms, 10, f"room {room_id}")
        return room_id

    async def join(self, client: nio.AsyncClient, room_id: str) -> None:
        _check(await client.join(room_id), nio.JoinResponse, f"join {room_id}")
        await self._sync_until(client, lambda: room_id in client.rooms, 10, f"room {room_id}")

    async def wait_for_invite(
        self,
        client: nio.AsyncClient,
        inviter: str,
        timeout: float = 10,  # noqa: ASYNC109
    ) -> str:
        """Sync `client` until `inviter` (e.g. the bot) has invited it to a room; returns
        the room id (the invite is not accepted: see `join`)."""

        def invited() -> str:
            rooms = client.invited_rooms.items()
            return next((room_id for room_id, room in rooms if room.inviter == inviter), "")

        await self._sync_until(client, lambda: bool(invited()), timeout, f"invite by {inviter}")
        return invited()

    async def wait_for_join(
        self,
        client: nio.AsyncClient,
        room_id: str,
        user_id: str,
        timeout: float = 10,  # noqa: ASYNC109
    ) -> None:
        """Sync `client` until `user_id` (e.g. the bot) has joined `room_id`."""
        joined = functools.partial(_is_joined, client, room_id, user_id)
        await self._sync_until(client, joined, timeout, f"{user_id} joined {room_id}")

    async def send_text(self, client: nio.AsyncClient, room_id: str, text: str) -> str:
        return await self._send(client, room_id, {"msgtype": "m.text", "body": text})

    async def send_location(
        self, client: nio.AsyncClient, room_id: str, lat: float, lon: float
    ) -> str:
        geo_uri = f"geo:{lat},{lon}"
        content = {
            "msgtype": "m.location",
            "body": f"Location {geo_uri}",
            "geo_uri": geo_uri,
            "org.matrix.msc3488.location": {"uri": geo_uri},
            "org.matrix.msc3488.asset": {"type": "m.self"},
        }
        return await self._send(client, room_id, content)

    async def send_image(
        self,
        client: nio.AsyncClient,
        room_id: str,
        data: bytes,
        name: str,
        mimetype: str,
        encrypted: bool = False,
    ) -> str:
        """Plain rooms get `url`; encrypted rooms need an encrypted upload and `file`."""
        response, keys = await client.upload(
            io.BytesIO(data),
            content_type=mimetype,
            filename=name,
            encrypt=encrypted,
            filesize=len(data),
        )
        uri = _check(response, nio.UploadResponse, "upload").content_uri
        content: dict[str, Any] = {
            "msgtype": "m.image",
            "body": name,
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        if encrypted:
            content["file"] = {"url": uri, "mimetype": mimetype, **(keys or {})}
        else:
            content["url"] = uri
        return await self._send(client, room_id, content)

    async def _send(self, client: nio.AsyncClient, room_id: str, content: dict[str, Any]) -> str:
        if client.olm is not None:
            await self._sync(client, 0)  # fresh members and device keys before encrypting
        response = await client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        return str(_check(response, nio.RoomSendResponse, "room send").event_id)

    async def download_media(self, client: nio.AsyncClient, event: nio.RoomMessage) -> bytes:
        """The bytes of a received plain (`url`) or encrypted (`file`) media event."""
        response = await client.download(mxc=event.url)
        body: bytes = _check(response, nio.DownloadResponse, f"download {event.url}").body
        if isinstance(event, nio.RoomEncryptedMedia):
            return bytes(decrypt_attachment(body, event.key["k"], event.hashes["sha256"], event.iv))
        return body

    async def wait_for_message(
        self,
        client: nio.AsyncClient,
        room_id: str,
        predicate: MessagePredicate,
        timeout: float = 10,  # noqa: ASYNC109 -- bounds a loop of syncs, not one await
    ) -> nio.RoomMessage:
        """The next unconsumed m.room.message in `room_id` from someone else matching
        `predicate`, decrypted when the room is encrypted. Syncs with short long-polls."""
        inbox = self._inbox(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            inbox.retry_decryption(client)
            event = inbox.take(room_id, client.user_id, predicate)
            if event is not None:
                return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{client.user_id}: no matching message in {room_id} within {timeout} s "
                    f"({inbox.describe(room_id)})"
                )
            await self._sync(client, int(min(remaining, SYNC_POLL_SECONDS) * 1000))
