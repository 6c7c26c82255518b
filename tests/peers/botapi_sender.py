"""An outbox `Sender` that posts straight to a Bot API server with aiohttp (no PTB).

For the scale test and the benchmarks: a thin client that renders replies with the
Telegram transport's `render` and maps errors as the transport does (429 -> RetryLater,
403 and "chat not found" -> Unreachable, 5xx and network errors -> TransientFailure).
The test server counts flood waits in emulated seconds, so they are divided by its
`time_scale`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from bot.core.events import Reply
from bot.delivery.outbox import RetryLater, TransientFailure, Unreachable
from bot.transports.telegram_render import render


class BotApiSender:
    """Sends the text parts of replies with sendMessage; the outbox worker's `Sender`."""

    transport = "telegram"

    def __init__(
        self, base_url: str, token: str, time_scale: float = 1.0, connections: int = 100
    ) -> None:
        self.url = f"{base_url}{token}"
        self.time_scale = time_scale
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BotApiSender:
        connector = aiohttp.TCPConnector(limit=self.connections)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        last = ""
        for reply in replies:
            for part in render(reply):
                if part.kind != "text":
                    continue
                data = {"chat_id": chat_id, "text": part.html, "parse_mode": "HTML"}
                if part.markup is not None:
                    data["reply_markup"] = json.dumps(part.markup.to_dict())
                result = await self._post("sendMessage", data)
                last = str(result.get("message_id", ""))
        return last

    async def _post(self, method: str, data: dict[str, str]) -> dict[str, Any]:
        if self._session is None:
            raise TransientFailure("sender not started")
        try:
            async with self._session.post(f"{self.url}/{method}", data=data) as response:
                body: dict[str, Any] = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientFailure(repr(exc)) from exc
        if body.get("ok"):
            result: dict[str, Any] = body["result"]
            return result
        code = int(body.get("error_code", response.status))
        description = str(body.get("description", ""))
        if code == 429:
            retry_after = float(body.get("parameters", {}).get("retry_after", 1))
            raise RetryLater(retry_after / self.time_scale)
        if code == 403 or "chat not found" in description:
            raise Unreachable(description)
        raise TransientFailure(f"{code} {description}")
