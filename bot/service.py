"""`sicherheitsbot run`: every enabled transport, its outbox worker, until stopped."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from contextlib import AsyncExitStack, suppress
from typing import Protocol

from bot.config import Settings
from bot.core.doors import reach_problem
from bot.delivery.outbox import OutboxWorker, Sender
from bot.delivery.pacing import Limits
from bot.leader import one_instance
from bot.runtime import Runtime, open_runtime
from bot.scheduler import scheduler_while_leader
from bot.transports.registry import doors
from bot.web.server import create_app, serving

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A running platform connection: translation only, no feature logic."""

    name: str
    sender: Sender
    limits: Limits

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def connected(self) -> bool:
        """Receiving from the platform (for /readyz)."""
        ...


def enabled_transports(runtime: Runtime) -> list[Transport]:
    settings = runtime.settings
    wanted = [
        ("telegram", "TelegramTransport", settings.telegram.enabled),
        ("matrix", "MatrixTransport", settings.matrix.enabled),
    ]
    found: list[Transport] = []
    for module, name, enabled in wanted:
        if enabled:
            # Imported only when enabled: a Telegram-only deployment never loads nio.
            transport_class = getattr(importlib.import_module(f"bot.transports.{module}"), name)
            found.append(transport_class(runtime))
    return found


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    problem = reach_problem(doors(settings))
    if problem is not None:
        raise RuntimeError(problem)
    with one_instance(settings.database_url):
        await _serve(settings, stop)


async def _serve(settings: Settings, stop: asyncio.Event) -> None:
    async with open_runtime(settings) as runtime, AsyncExitStack() as stack:
        # With the terminal as the only transport (nothing to connect: its people read
        # their messages when they open the chat), `run` serves the scheduler and health.
        transports = enabled_transports(runtime)
        if settings.web.listen:
            # First: /healthz answers while the transports still connect.
            app = create_app(settings.web, runtime.engine, transports, runtime)
            await stack.enter_async_context(serving(app, settings.web))
        workers = []
        for transport in transports:
            # One transport failing to start must not stop the others.
            try:
                await transport.start()
            except Exception:
                log.exception("transport %s failed to start", transport.name)
                continue
            stack.push_async_callback(transport.stop)
            worker = OutboxWorker(
                runtime.sessions,
                transport.sender,
                transport.limits,
                on_undeliverable=runtime.core.undeliverable,
            )
            workers.append(asyncio.create_task(worker.run_forever()))
        # Several instances on PostgreSQL: only the holder of the advisory lock schedules.
        await stack.enter_async_context(scheduler_while_leader(runtime))
        log.info("serving %d transport(s)", len(workers))
        await stop.wait()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
