"""python-telegram-bot's requests over aiohttp.

PTB's own backend (httpx) costs about 4 ms of CPU per Bot API call, most of it in
httpcore's connection pool; aiohttp (already here for the webhook and the web door) does
the same call in well under one. At a few calls per answer that decides how many people
one core can answer (bench/answers.py). PTB documents `BaseRequest` for exactly this; the
rest of PTB (parsing, errors, retries after 429) is unchanged.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# PTB's defaults (HTTPXRequest), except that a request waits longer for a free connection
# instead of failing after a second when many answers go out at once.
CONNECT = 5.0
READ = 5.0
WRITE = 5.0
MEDIA_WRITE = 20.0
POOL = 10.0
JSON = {"Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` on one aiohttp session with at most `connections` connections."""

    __slots__ = ("_connections", "_session")

    def __init__(self, connections: int = 32) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return READ

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        connect = _seconds(connect_timeout, CONNECT)
        write = _seconds(write_timeout, MEDIA_WRITE if files else WRITE)
        read = _seconds(read_timeout, READ)
        timeout = aiohttp.ClientTimeout(
            # Waiting for a free connection, then connecting.
            connect=None if connect is None else connect + (_seconds(pool_timeout, POOL) or 0),
            sock_connect=connect,
            # aiohttp has no write timeout of its own: sending counts towards reading.
            sock_read=None if read is None else read + (write or 0),
        )
        body: Any = None
        headers = None
        if request_data is not None and files:
            body = _form(request_data.json_parameters, files)
        elif request_data is not None:
            # A JSON body (the Bot API takes one): cheaper to build than a urlencoded form.
            body, headers = request_data.json_payload, JSON
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _seconds(value: ODVInput[float], default: float) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _form(parameters: dict[str, str], files: dict[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in parameters.items():
        form.add_field(name, value)
    for name, (file_name, content, mime_type) in files.items():
        form.add_field(name, content, filename=file_name, content_type=mime_type)
    return form
